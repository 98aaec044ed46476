(* Stoichiometry 2 and a species conversion factor *)
testType: TimeCourse
