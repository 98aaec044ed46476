(* A trigger true at t = 0 with initialValue false fires at t = 0 *)
testType: TimeCourse
