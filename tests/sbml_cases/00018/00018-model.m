(* An assignment rule without math is ignored *)
testType: TimeCourse
