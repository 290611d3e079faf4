"""pmctl: the supervisor (`pmctl up`) and the commands people use (status, watch, events, ...)."""
