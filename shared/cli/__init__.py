"""`amcctl`: the operator CLI. Each service contributes a command group."""
