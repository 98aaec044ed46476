(* A stoichiometry under a rate rule: st1' = 1/2, so dS1/dt = -(1 + t/2) k S1 *)
testType: TimeCourse
