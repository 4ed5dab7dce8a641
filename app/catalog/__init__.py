"""The providers API: which networks this gateway can run jobs on, their health, what they
can run and how they price."""
