//! The pure planner: (flow, observed Jobs, now) -> what to do and what the status must read.
