(* A delayed event (the generated engine refuses delays by name) *)
testType: TimeCourse
