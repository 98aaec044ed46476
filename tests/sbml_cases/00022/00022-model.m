(* An event on a species crossing, firing again and again (a sawtooth) *)
testType: TimeCourse
