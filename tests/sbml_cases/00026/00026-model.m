(* A delayed event *)
testType: TimeCourse
