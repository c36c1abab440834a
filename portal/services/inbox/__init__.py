"""The shared inbox: chats kept up to date by event processing and sends (`upkeep`), the chat list and the team's
work on a chat (`chats`: filters, assignment, resolve, read), internal notes (`notes`)."""
