(* Two simultaneous events: the higher priority fires first, the lower one's value stays *)
testType: TimeCourse
