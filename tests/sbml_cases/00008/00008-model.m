(* A piecewise rate rule (continuous solution with a kink at t = 2) *)
testType: TimeCourse
