(* rateOf() of a species in an assignment rule *)
testType: TimeCourse
