(* First-order decay S1 -> S2 in a unit compartment *)
testType: TimeCourse
