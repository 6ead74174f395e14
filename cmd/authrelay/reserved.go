package main

// reservedHint follows a store.ErrReservedAccount refusal: the store refuses
// the reserved accounts (deploy.Layout.OpenDatabase gives it those of
// nats.conf), and so does deploy.Layout.CheckAccountNotReserved; the command
// line says why and what to do instead.
const reservedHint = "a user in it could read every login request or control the server: give an application account"
