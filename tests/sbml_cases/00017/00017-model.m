(* No integrated state: an assignment rule in time and a constant *)
testType: TimeCourse
