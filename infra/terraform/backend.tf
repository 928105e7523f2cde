terraform {
  required_version = ">= 1.11" # write-only arguments (value_wo) keep the nonce out of state

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
  }

  # The state bucket and lock table are bootstrapped once, outside this stack.
  # Each workspace (staging, production) keeps its state under
  # env/<workspace>/infra/terraform.tfstate.
  backend "s3" {
    bucket               = "mirror-dissonance-terraform-state"
    key                  = "infra/terraform.tfstate"
    region               = "us-east-1"
    encrypt              = true
    dynamodb_table       = "mirror-dissonance-terraform-locks"
    workspace_key_prefix = "env"
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.common_tags
  }
}
