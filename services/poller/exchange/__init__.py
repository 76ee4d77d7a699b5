"""The exchange with AMC: submitting, following, cancelling and downloading executions, every call
through the gateway, and what a failed call means."""
