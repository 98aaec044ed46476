(* A delayed event whose assignment is evaluated at execution (useValuesFromTriggerTime false) *)
testType: TimeCourse
