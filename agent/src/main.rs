//! `jobflow-agent`: the in-cluster controller for JobFlows.

fn main() {}
