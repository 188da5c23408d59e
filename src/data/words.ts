/**
 * Word lists for synthetic book titles. Each topic has its own vocabulary so a leadership title
 * reads like one; topics without a list use the general one. No word holds a tab, comma, quote,
 * backslash or newline (a test checks), so rows need no escaping in COPY text or CSV.
 */
export interface Vocabulary {
  adjectives: readonly string[];
  nouns: readonly string[];
  plurals: readonly string[];
  verbs: readonly string[];
}

const leadership: Vocabulary = {
  adjectives: ['Radical', 'Quiet', 'Servant', 'Extreme', 'Fearless', 'Humble', 'Resilient', 'Deliberate', 'Candid', 'Adaptive', 'Inclusive', 'Courageous', 'Effective', 'Accountable', 'Essential', 'Lean', 'Agile', 'Human', 'Remote', 'First-Time'],
  nouns: ['Leadership', 'Candor', 'Ownership', 'Influence', 'Trust', 'Vision', 'Culture', 'Courage', 'Change', 'Strategy', 'Feedback', 'Execution', 'Focus', 'Purpose', 'Alignment', 'Accountability', 'Coaching', 'Decision Making', 'Delegation', 'Negotiation'],
  plurals: ['Teams', 'Managers', 'Leaders', 'Founders', 'Habits', 'Meetings', 'Conversations', 'Organizations', 'Tribes', 'Principles', 'Rules', 'Questions', 'Decisions', 'Mentors', 'Promises'],
  verbs: ['Leading', 'Managing', 'Coaching', 'Building', 'Growing', 'Inspiring', 'Scaling', 'Turning Around', 'Mastering', 'Rethinking'],
};

const technical: Vocabulary = {
  adjectives: ['Distributed', 'Concurrent', 'Scalable', 'Reliable', 'Functional', 'Practical', 'Modern', 'Effective', 'Secure', 'Data-Intensive', 'Real-Time', 'High-Performance', 'Clean', 'Pragmatic', 'Embedded', 'Reactive', 'Relational', 'Cloud-Native', 'Observable', 'Fault-Tolerant'],
  nouns: ['PostgreSQL', 'SQL', 'Replication', 'Architecture', 'Concurrency', 'Networking', 'Security', 'Refactoring', 'Testing', 'Performance', 'Observability', 'Cryptography', 'Kubernetes', 'Rust', 'TypeScript', 'Linux', 'Indexing', 'Query Planning', 'Data Modeling', 'Storage'],
  plurals: ['Systems', 'Databases', 'Algorithms', 'Compilers', 'Networks', 'Applications', 'Queries', 'Indexes', 'Transactions', 'Microservices', 'Data Structures', 'Patterns', 'Pipelines', 'Protocols', 'Internals'],
  verbs: ['Designing', 'Building', 'Scaling', 'Tuning', 'Debugging', 'Operating', 'Testing', 'Securing', 'Understanding', 'Programming'],
};

const general: Vocabulary = {
  adjectives: ['Silent', 'Hidden', 'Last', 'Golden', 'Broken', 'Invisible', 'Wild', 'Lost', 'Secret', 'Burning', 'Endless', 'Northern', 'Midnight', 'Forgotten', 'Little', 'Great', 'Crimson', 'Distant', 'Restless', 'Gentle'],
  nouns: ['River', 'Garden', 'House', 'Road', 'Sea', 'Winter', 'Summer', 'Harbor', 'Mountain', 'City', 'Island', 'Forest', 'Light', 'Shadow', 'Storm', 'Memory', 'Fire', 'Bridge', 'Kingdom', 'Song'],
  plurals: ['Stars', 'Stones', 'Birds', 'Letters', 'Ghosts', 'Wolves', 'Sisters', 'Strangers', 'Maps', 'Bells', 'Lanterns', 'Orchards', 'Tides', 'Voices', 'Keys'],
  verbs: ['Finding', 'Crossing', 'Remembering', 'Chasing', 'Leaving', 'Keeping', 'Waiting for', 'Dreaming of', 'Burning', 'Saving'],
};

export const VOCABULARIES: Readonly<Record<string, Vocabulary>> = { leadership, technical, general };

export function vocabularyFor(topic: string): Vocabulary {
  return VOCABULARIES[topic.toLowerCase()] ?? general;
}

/** Small numbers that read well in titles ("The Five Dysfunctions of …"). */
export const COUNTS = ['Two', 'Three', 'Four', 'Five', 'Seven', 'Ten', 'Twelve', 'Twenty-One', '97', '101'] as const;
