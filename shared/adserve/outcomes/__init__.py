"""What happens after a decision: tracking tokens, events, decision records, recording and training logs."""
