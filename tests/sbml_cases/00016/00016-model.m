(* A hierarchical (comp) model: two copies of a decay, one with its rate replaced *)
testType: TimeCourse
