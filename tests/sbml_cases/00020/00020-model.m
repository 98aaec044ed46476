(* A piecewise nested inside a piecewise *)
testType: TimeCourse
