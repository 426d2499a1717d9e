"""What students see: ``autograder check`` before submitting, and feedback after grading."""
