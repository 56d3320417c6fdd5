"""Delivery: what each campaign delivered, counted exactly once per outcome, by hour; budgets and reports."""
