"""The customer billing portal and the product team's dashboard: server-rendered pages."""
