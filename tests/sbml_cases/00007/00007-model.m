(* A function definition in a kinetic law *)
testType: TimeCourse
