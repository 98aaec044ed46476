(* An event resizes a compartment: amounts inside are kept; S2 set by the same event is an amount in the old size (as in the official case 01779) *)
testType: TimeCourse
