(* A boundary species feeding a product, and a constant species *)
testType: TimeCourse
