(* An assignment rule on a parameter using a species and time *)
testType: TimeCourse
