(* An event changing a rate constant at t = 2 *)
testType: TimeCourse
