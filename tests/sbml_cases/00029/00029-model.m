(* A non-persistent delayed event cancelled when its trigger turns false; a persistent one runs *)
testType: TimeCourse
