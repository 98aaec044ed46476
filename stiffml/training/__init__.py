"""What a training run needs besides its model and data: callbacks Lightning does not ship
(``callbacks``), validated checkpoint loading and atomic saving (``checkpoints``), and one experiment
(fit, then validate and predict) shared by the commands (``experiment``)."""
