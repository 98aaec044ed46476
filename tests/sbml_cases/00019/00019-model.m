(* An initial assignment that reads time (t = 0 at the start) *)
testType: TimeCourse
