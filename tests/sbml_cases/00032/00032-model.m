(* A compartment sized by an assignment rule C = 1 + t/2: concentrations inside are diluted *)
testType: TimeCourse
