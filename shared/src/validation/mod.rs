//! Validation of a JobFlow: every problem at once, each with a field path and a fix.
//! (Interface fixed; implementation in progress.)
