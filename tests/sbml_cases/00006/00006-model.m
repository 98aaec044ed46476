(* Initial assignments to a parameter and to a species *)
testType: TimeCourse
