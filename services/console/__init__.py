"""The operators' web console: server-rendered pages over the services' management APIs."""
