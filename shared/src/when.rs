//! `when` expressions: CEL over the flow's step phases, outputs and parameters.
//! (Interface fixed; implementation in progress.)
