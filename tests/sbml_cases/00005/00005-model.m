(* Rate rules on a parameter and on a species *)
testType: TimeCourse
