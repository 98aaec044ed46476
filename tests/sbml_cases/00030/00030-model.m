(* delay(): S1' = -k S1(t - 1) with the initial state as history; x = delay(S1, 0.5) by a rule (roadrunner refuses delays) *)
testType: TimeCourse
