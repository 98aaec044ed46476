"""One module per ``stiffml`` command (``stiffml.main`` dispatches to them): ``cli`` (fit,
validate, test, predict: LightningCLI), ``listing`` (list), ``benchmark`` with its executors
(``ray_executor``; ``jobs``: what one job leaves behind, shared by both), ``symbolic``, and ``argv``
(checks of a training command's arguments before torch loads). The SBML and PEtab suites and
``petab-fit`` keep their commands beside their engines (``stiffml.sbml.suite``,
``stiffml.petab.suite``, ``stiffml.petab.report``)."""
