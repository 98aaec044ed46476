(* Two compartments of different sizes; S1 reported as an amount, S2 as a concentration *)
testType: TimeCourse
