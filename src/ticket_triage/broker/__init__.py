"""The broker front: ticket messages from a RabbitMQ queue, answered by the same service parts as HTTP."""
