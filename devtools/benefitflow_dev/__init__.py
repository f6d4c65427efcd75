"""Development tools of benefitflow, never installed with it: the one-machine stack behind `make up`, its demo
data, synthetic registries and a simulated payment provider for the demo, the tests and the bench."""
