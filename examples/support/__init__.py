"""A customer-support desk built on intentflow (see README.md in this folder).

* `examples.support.app`: the intents, toolsets, agents, graph, router and runner factory;
* `examples.support.tools`: fake in-memory customer, order, billing and help-centre backends;
* `examples.support.demo`: a scripted conversation, offline through the fake OpenAI server.
"""
