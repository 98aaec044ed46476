(* A local parameter shadowing a global one of the same id *)
testType: TimeCourse
