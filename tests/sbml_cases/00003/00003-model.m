(* A species with hasOnlySubstanceUnits and an initial amount, in a compartment of size 2 *)
testType: TimeCourse
