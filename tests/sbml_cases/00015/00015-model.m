(* A reaction's rate as an output variable *)
testType: TimeCourse
