(* A compartment growing by a rate rule; concentration follows the product rule *)
testType: TimeCourse
