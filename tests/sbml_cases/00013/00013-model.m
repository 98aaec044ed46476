(* A Level 2 Version 4 file (decay with an assignment rule) *)
testType: TimeCourse
