(* An algebraic rule determining a species (and its initial value) *)
testType: TimeCourse
