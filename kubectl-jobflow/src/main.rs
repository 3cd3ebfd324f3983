//! `kubectl jobflow`: the kubectl plugin for JobFlows.

fn main() {}
