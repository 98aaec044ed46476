(* An event resetting a species at t = 2.55 *)
testType: TimeCourse
