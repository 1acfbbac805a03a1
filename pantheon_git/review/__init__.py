"""After the night: votes and the gate, the morning report, merging what passed."""
